// Test fixture for tests/test_build.py: a library whose op answer() returns fixture_value().
#pragma once
#include <cstdint>

int64_t fixture_value();
