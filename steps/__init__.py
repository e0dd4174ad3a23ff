"""The 14 steps of the RDS to EC2 plan, one module each."""
