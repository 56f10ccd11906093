"""Evaluation: forecasting and classification scores, reports and plots."""
