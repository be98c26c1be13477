"""Static checks over synthesized stacks (checkov, policy linting)."""
