"""The tools around the platform, apart from the runtime kit the services run (`hocvu`):

- `hocvu_tools.devstack`: the dev stack (`make run`), the stores and broker it starts;
- `hocvu_tools.bench`: the benchmark harness (`make bench`);
- `hocvu_tools.ops`: the operations CLI (dead letters, SMS reconciliation).

Imports point one way: these import `hocvu` and the services, never the reverse.
"""
