"""Sandbox implementations of the external systems (DESIGN.md §2): the dev/test default behind each adapter.

Each sandbox is a separate process that speaks the same contract over the same transport as the real system, so the
adapter that talks to it is the one production uses. Nothing here is imported by the Jingsu server itself.
"""
