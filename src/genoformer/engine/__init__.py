"""What every pillar shares: devices, training, run directories, errors, metrics, plots."""
