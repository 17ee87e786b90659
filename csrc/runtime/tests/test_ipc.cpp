// Device memory shared between processes (ipcExport / ipcOpen / ipcClose). A second mapping of the same file in this
// process stands in for the importing process: it is exactly what that process gets.
#include <unistd.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "runtime/runtime_internal.h"
#include "test_helpers.h"

namespace {

using foo_rt::Status;
using foo_test::TwoDevices;

TEST_F(TwoDevices, ImportedMemoryIsTheExportersMemory) {
  void* original = nullptr;
  ASSERT_OK(foo_rt::malloc(0, &original, 3 * 4096));
  // An offset that is not page-aligned, as a tensor's storage inside a cached block.
  char* exported = static_cast<char*>(original) + 4096 + 100;
  int fd = -1;
  std::size_t offset = 0;
  ASSERT_OK(foo_rt::ipcExport(exported, &fd, &offset));

  void* imported = nullptr;
  ASSERT_OK(foo_rt::ipcOpen(1, fd, offset, 1000, &imported));
  EXPECT_NE(imported, exported);
  EXPECT_EQ(foo_rt::pointerDevice(imported), 1);
  EXPECT_EQ(foo_rt::deviceAddress(foo_rt::hostView(imported)), imported);

  std::vector<int> values(250);
  std::iota(values.begin(), values.end(), 7);
  ASSERT_OK(foo_rt::memcpy(exported, values.data(), 1000));  // written by the exporter ...
  std::vector<int> seen(250, 0);
  ASSERT_OK(foo_rt::memcpy(seen.data(), imported, 1000));  // ... read by the importer
  EXPECT_EQ(seen, values);
  std::memset(foo_rt::hostView(imported), 0, 4);  // and the other way
  ASSERT_OK(foo_rt::memcpy(seen.data(), exported, 4));
  EXPECT_EQ(seen[0], 0);

  // Copies may not leave the imported range; it can be exported on; free() is not the way to let go of it.
  EXPECT_EQ(foo_rt::memcpy(seen.data(), imported, 1004), Status::InvalidValue);
  int fd_again = -1;
  std::size_t offset_again = 0;
  ASSERT_OK(foo_rt::ipcExport(static_cast<char*>(imported) + 8, &fd_again, &offset_again));
  EXPECT_EQ(offset_again, offset + 8);
  EXPECT_EQ(foo_rt::free(imported), Status::InvalidValue);

  ASSERT_OK(foo_rt::ipcClose(imported));
  EXPECT_EQ(foo_rt::pointerDevice(imported), -1);
  EXPECT_EQ(foo_rt::hostView(imported), nullptr);
  EXPECT_EQ(foo_rt::ipcClose(imported), Status::InvalidValue);
  ASSERT_OK(foo_rt::free(original));
}

TEST_F(TwoDevices, IpcRefusesBadArguments) {
  int host_value = 0;
  int fd = -1;
  std::size_t offset = 0;
  EXPECT_EQ(foo_rt::ipcExport(&host_value, &fd, &offset), Status::InvalidValue);
  void* ptr = nullptr;
  ASSERT_OK(foo_rt::malloc(0, &ptr, 4096));
  ASSERT_OK(foo_rt::ipcExport(ptr, &fd, &offset));
  void* imported = nullptr;
  EXPECT_EQ(foo_rt::ipcOpen(5, fd, offset, 16, &imported), Status::InvalidDevice);
  EXPECT_EQ(foo_rt::ipcOpen(0, fd, offset, 0, &imported), Status::InvalidValue);
  EXPECT_EQ(foo_rt::ipcOpen(0, -1, offset, 16, &imported), Status::InvalidValue);
  // Past the end of the file: refused rather than mapped (touching it would fault).
  EXPECT_EQ(foo_rt::ipcOpen(0, fd, std::size_t{1} << 50, 16, &imported), Status::InvalidValue);
  int unrelated = 0;
  EXPECT_EQ(foo_rt::ipcClose(&unrelated), Status::InvalidValue);
  ASSERT_OK(foo_rt::free(ptr));
}

}  // namespace
