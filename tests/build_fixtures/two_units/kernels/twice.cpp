// The fixture's stand-in for a kernels library (backend_specs compiles kernels/ apart, linked against the rest).
#include "fixture.h"

int64_t fixture_twice() { return 2 * fixture_value(); }
