"""Dose curves: control cells simulated along a dose grid, four-parameter fits, export."""
