"""SAC whose critic first layer is a Kolmogorov-Arnold layer (SincKAN, pykan) or a control (issue #11)."""
