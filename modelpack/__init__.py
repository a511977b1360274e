"""Model packaging and building: train the sample, package any XGBoost model, build each profile's artifact."""
