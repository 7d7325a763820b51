"""Analyses over the pipeline's data and models (explanation statistics, ...)."""
