"""What the engine knows of the machine: the environment record (``env``) and NVML (``nvml``). Its memory calibration
(``ctbench.run.calibrate``) runs through the engine's measurement, so it sits with the runner."""
