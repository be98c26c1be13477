"""The blue/green EKS upgrade runbook behind ``cluster-upgrade`` (docs/upgrade.md).

Modules: ``aws`` (clients), ``permissions`` (declared IAM actions), ``target`` (which account,
cluster and slots), ``checks`` (plan and verify), ``weights`` (Route 53), ``gates`` (alarms and
metrics), ``state`` (run record, lock, audit log), ``yamledit`` (prepare/retire), ``runbook``
(the phases).
"""
