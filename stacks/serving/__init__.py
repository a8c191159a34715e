"""The serving stack (stack.py), composed of one construct per concern: the endpoint, its
alarms, the traffic, deploy and drift functions, and the dashboard."""

from .stack import ServingStack

__all__ = ["ServingStack"]
