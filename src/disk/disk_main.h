#pragma once
/* Entry point of `cvmfsd disk`; argv[0] is "disk". */
int cvmfsd_disk_main(int argc, char **argv);
