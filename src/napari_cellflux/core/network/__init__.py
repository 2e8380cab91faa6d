"""The velocity network and flow matching: presets, U-Net, units, ODE steps, device."""
