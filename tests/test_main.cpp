// The doctest main shared by all C++ test files (one binary, many test cases).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
