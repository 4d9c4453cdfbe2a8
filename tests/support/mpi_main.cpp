// The doctest main of the MPI tests (tests/mpi/*_test.cpp), run as `mpirun -np 2 test_mpi_<name>`:
// every rank runs every test case (the cases call collectives in the same order on every rank),
// and the program fails when any rank failed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <mpi.h>

#include "prefopt/comm/mpi.hpp"

int main(int argc, char** argv) {
  int rc = 0;
  {
    prefopt::comm::mpi_environment env(&argc, &argv);
    doctest::Context ctx(argc, argv);
    rc = ctx.run();
    int worst = 0;
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    rc = worst;
  }
  return rc;
}
