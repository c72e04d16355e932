"""What is measured from the theory and the networks: distances, moments, fits (``compare``) and figures (``plots``)."""
