"""amplify: driving-scenario data amplification (library: models, I/O, dataset, scenarios; no Ray)."""
