#pragma once
/* Entry point of `cvmfsd views`; argv[0] is "views". */
int cvmfsd_views_main(int argc, char **argv);
