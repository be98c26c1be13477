"""GitOps output: per-slot Helm values, Karpenter capacity and the ops cluster registrations (fleetform gitops)."""
