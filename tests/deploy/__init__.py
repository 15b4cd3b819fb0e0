"""Tests of the deployment files: dashboards, alert rules, compose, Dockerfile."""
