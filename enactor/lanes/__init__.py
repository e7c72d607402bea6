"""Lanes: the fast and slow lanes for changes, their controller and a real rig."""
