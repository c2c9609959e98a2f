"""The rollout away from account keys: find keys left on machines, see who still uses one in the logs."""
