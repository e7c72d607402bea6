"""The record model and the change-batch rules that every part shares."""
