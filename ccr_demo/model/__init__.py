"""The model: configuration, towers (a registry), processing, fusion encoder, modeling, card."""
