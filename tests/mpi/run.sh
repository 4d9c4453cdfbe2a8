#!/bin/sh
# Runs an MPI test program on 2 ranks: tests/mpi/run.sh <mpirun> <program> [args...].
# Exit 77 (reported by CTest as skipped) when mpirun is missing. CI runs as root, which Open MPI
# refuses unless told otherwise; --oversubscribe lets 2 ranks share fewer cores.
mpirun=$1
shift
if ! command -v "$mpirun" >/dev/null 2>&1; then
  echo "mpirun not found: skipped"
  exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
exec "$mpirun" -np "${PREFOPT_TEST_RANKS:-2}" --oversubscribe "$@"
