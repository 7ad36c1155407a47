"""mocksim: simulated AutomationOne ESP32 fleets over real MQTT."""
