"""Test harness for the compatibility suite: brokers, raw wire protocol, client helpers, Kafka tools."""
