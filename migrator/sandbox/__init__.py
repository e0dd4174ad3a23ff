"""The demo's sandbox: a sample dataset for the source and a live write workload with a loss oracle."""

from migrator.sandbox.dataset import APP_USER, WORKLOAD_TABLE_DDL, SampleDataset, create_sample_dataset
from migrator.sandbox.workload import WorkloadStats, WorkloadVerdict, WriteWorkload

__all__ = [
    "APP_USER",
    "WORKLOAD_TABLE_DDL",
    "SampleDataset",
    "WorkloadStats",
    "WorkloadVerdict",
    "WriteWorkload",
    "create_sample_dataset",
]
