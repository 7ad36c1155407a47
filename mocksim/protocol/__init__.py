"""The wire contract: topics (build/parse), payload builders and the validator."""
