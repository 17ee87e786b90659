// The fixture's stand-in for the c10d backend's library (backend_specs compiles distributed/ apart, linked against the
// rest).
#include "fixture.h"

int64_t fixture_half() { return fixture_value() / 2; }
