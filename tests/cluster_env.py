"""The test cluster's connection settings for the Python tests: runs
`scripts/cluster.sh env` (which honours CDP_CLUSTER / CDP_PGPORT / CDP_BASE)
and puts its PGHOST, PGPORT and PGUSER into this process's environment, so
every psql the test starts reaches that cluster."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env_of_cluster():
    out = subprocess.run([os.path.join(ROOT, "scripts", "cluster.sh"), "env"], capture_output=True, text=True, check=True)
    for assignment in out.stdout.split():
        name, _, value = assignment.partition("=")
        os.environ[name] = value
