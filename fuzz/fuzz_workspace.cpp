// libFuzzer target: the workspace reader (loadWorkspace, listRuns, isWorkspace) on arbitrary
// bytes. Inputs that start with a SparseLab seal are re-sealed first, so that mutated HDF5
// bytes reach libhdf5's parser and the reader's checks behind it (without this, every
// mutation would stop at the SHA-256, which only tests the seal); inputs without a seal take
// the path of workspaces written before seals existed.
#include "fuzz_support.h"

#include "store/hdf5_handles.h"
#include "store/workspace.h"

#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace sparselab;
    const auto path = fuzz::writeInput("w.h5", data, size);
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    if (size >= store::h5::kSealSize && bytes.starts_with(store::h5::kSealMagic)) {
        const auto lock = store::h5::hdf5Lock();
        store::h5::sealFile(path.string());
    }
    return fuzz::runExpectingOnlyInputErrors([&] {
        (void)store::isWorkspace(path);
        (void)store::listRuns(path);
        (void)store::loadWorkspace(path);
    });
}
