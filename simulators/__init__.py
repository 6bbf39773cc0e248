"""Simulated boilers, pressure vessels and elevators behind gateways, publishing the wire contract."""
