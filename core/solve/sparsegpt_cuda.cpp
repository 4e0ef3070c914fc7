// SparseGPT's column loop on CUDA tensors through core/cuda's block kernel (builds with
// SPARSELAB_CUDA_SOLVER, i.e. a CUDA-enabled LibTorch and nvcc; elsewhere the stubs below say
// the path is absent and solveSparseGpt never picks it).
//
// Per column block: the unstructured mask with the CPU's rule (scores w²/d² with the same
// float32 operations — ATen's CUDA pow(x, 2) is x·x — and the exact k-th value, so the mask is
// the CPU's bit for bit given the same W), the fused kernel for the in-block loop, then the
// lazy update W[:, i2:] −= Err1 · Hinv[i1:i2, i2:] as one cuBLAS GEMM. Everything is queued on
// the current CUDA stream; the loss stays on the device until the end (no sync per block).
// TF32 is whatever the caller's ATen context says (off by default in LibTorch).

#include "solve/solver_detail.h"

#if defined(SPARSELAB_CUDA_SOLVER)
#include "cuda/sparsegpt_block.cuh"
#include "util/dynamic_symbol.h"
#include "util/errors.h"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cusolverDn.h>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>
#endif

namespace sparselab::solve::detail {

#if defined(SPARSELAB_CUDA_SOLVER)

bool cudaKernelsBuilt()
{
    return true;
}

double runCudaKernels(torch::Tensor& w, const torch::Tensor& hinv, torch::Tensor& mask, const SolverOptions& o,
                      const QuantGrid& rowGrid, ProgressReporter& reporter, const CancelToken* cancel,
                      const std::string& note)
{
    if (!w.is_cuda() || !w.is_contiguous() || w.scalar_type() != torch::kFloat)
        throw std::invalid_argument("runCudaKernels: weight must be a contiguous float32 CUDA tensor");
    if (o.blocksize > kCudaMaxBlockColumns)
        throw std::invalid_argument("runCudaKernels: blocksize above 128");
    const c10::cuda::CUDAGuard guard(w.device());
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(w.device().index()).stream();
    const int64_t rows = w.size(0);
    const int64_t cols = w.size(1);
    const int64_t blocks = (cols + o.blocksize - 1) / o.blocksize;
    auto maskBytes = mask.view(torch::kUInt8);                        // [rows, cols] 0/1
    auto err = torch::empty({rows, std::min(o.blocksize, cols)}, w.options()); // [rows, blocksize]
    auto rowLoss = torch::empty({rows}, w.options().dtype(torch::kDouble));
    auto loss = torch::zeros({}, w.options().dtype(torch::kDouble));
    torch::Tensor scale, zero;
    if (o.quant.enabled()) {
        scale = rowGrid.scale.to(w.device()).contiguous().clone(); // [rows], updated at group starts
        zero = rowGrid.zero.to(w.device()).contiguous().clone();
    }
    for (int64_t b = 0; b < blocks; ++b) {
        throwIfCancelled(cancel);
        const int64_t i1 = b * o.blocksize;
        const int64_t i2 = std::min(i1 + o.blocksize, cols);
        const int64_t count = i2 - i1;
        const auto hinv1 = hinv.narrow(0, i1, count).narrow(1, i1, count).contiguous(); // [count, count]
        if (!o.structured()) {
            auto block = mask.narrow(1, i1, count);
            if (o.sparsity <= 0.0) {
                block.fill_(false);
            } else {
                const auto scores = w.narrow(1, i1, count).pow(2) / hinv1.diagonal().pow(2).reshape({1, -1});
                const auto k = std::clamp<int64_t>(int64_t(double(scores.numel()) * o.sparsity), 0, scores.numel() - 1);
                // The k-th smallest score by a full sort, as the reference's torch.sort finds it:
                // on CUDA, kthvalue over one long row is a single thread block's radix select,
                // which made the whole solve of wide layers slow (docs/gpu.md, "Figures").
                const auto thresh = std::get<0>(at::sort(scores.flatten())).select(0, k);
                block.copy_(scores <= thresh);
            }
        }
        auto errBlock = count == err.size(1) ? err : torch::empty({rows, count}, w.options());
        cuda::SparseGptBlockArgs args;
        args.weight = w.data_ptr<float>();
        args.rows = rows;
        args.cols = cols;
        args.ldWeight = cols;
        args.i1 = i1;
        args.count = int(count);
        args.mask = maskBytes.data_ptr<uint8_t>();
        args.ldMask = cols;
        args.hinv1 = hinv1.data_ptr<float>();
        args.err = errBlock.data_ptr<float>();
        args.rowLoss = rowLoss.data_ptr<double>();
        args.nmN = o.nmN;
        args.nmM = o.nmM;
        args.bits = o.quant.bits;
        if (o.quant.enabled()) {
            args.scale = scale.data_ptr<float>();
            args.zero = zero.data_ptr<float>();
        }
        args.groupSize = o.quant.groupSize;
        args.symmetric = o.quant.symmetric;
        const cudaError_t status = cuda::sparseGptBlock(args, stream);
        if (status != cudaSuccess)
            throw std::runtime_error(std::string("SparseGPT CUDA kernel: ") + cudaGetErrorString(status));
        loss.add_(rowLoss.sum());
        if (i2 < cols)
            w.narrow(1, i2, cols - i2).addmm_(errBlock, hinv.narrow(0, i1, count).narrow(1, i2, cols - i2), 1.0, -1.0);
        reporter.report(b + 1, note);
    }
    return loss.item<double>() / 2.0;
}

namespace {

// cuSOLVER's trtri, looked up at run time in the cuSOLVER that LibTorch's CUDA library has
// already loaded (as the CPU path looks up LAPACK's): no link-time dependency, and a process
// without it falls back to ATen's triangular solve.
using CreateFn = cusolverStatus_t (*)(cusolverDnHandle_t*);
using SetStreamFn = cusolverStatus_t (*)(cusolverDnHandle_t, cudaStream_t);
using TrtriBufferSizeFn = cusolverStatus_t (*)(cusolverDnHandle_t, cublasFillMode_t, cublasDiagType_t, int64_t,
                                               cudaDataType, void*, int64_t, size_t*, size_t*);
using TrtriFn = cusolverStatus_t (*)(cusolverDnHandle_t, cublasFillMode_t, cublasDiagType_t, int64_t, cudaDataType,
                                     void*, int64_t, void*, size_t, void*, size_t, int*);

struct Cusolver {
    CreateFn create = nullptr;
    SetStreamFn setStream = nullptr;
    TrtriBufferSizeFn trtriBufferSize = nullptr;
    TrtriFn trtri = nullptr;
    std::mutex mutex;                          // guards handles and the stream each call sets
    std::map<int, cusolverDnHandle_t> handles; // per device; never destroyed (they live to exit)
    bool complete() const { return create && setStream && trtriBufferSize && trtri; }
};

Cusolver& cusolver()
{
    static Cusolver* c = [] {
        auto* out = new Cusolver(); // leaked on purpose: no teardown racing the CUDA runtime's at exit
        // The process's global scope, else the cuSOLVER LibTorch loaded locally (never loaded here).
        void* library = nullptr;
        if (!util::dynamicFunction<TrtriFn>("cusolverDnXtrtri"))
            library = dlopen("libcusolver.so.12", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        out->create = util::dynamicFunction<CreateFn>("cusolverDnCreate", library);
        out->setStream = util::dynamicFunction<SetStreamFn>("cusolverDnSetStream", library);
        out->trtriBufferSize = util::dynamicFunction<TrtriBufferSizeFn>("cusolverDnXtrtri_bufferSize", library);
        out->trtri = util::dynamicFunction<TrtriFn>("cusolverDnXtrtri", library);
        return out;
    }();
    return *c;
}

} // namespace

bool cudaTriangularInverseAvailable()
{
    return cusolver().complete();
}

torch::Tensor invertLowerTriangularCuda(const torch::Tensor& lower)
{
    Cusolver& api = cusolver();
    if (!api.complete() || !lower.is_cuda() || lower.scalar_type() != torch::kFloat || lower.dim() != 2
        || lower.size(0) != lower.size(1))
        return {};
    const int64_t n = lower.size(0);
    // cuSOLVER is column-major. A column-major L is inverted as the lower triangle; a row-major
    // one, read column-major, is Lᵀ: its upper triangle inverted in place is (L⁻¹)ᵀ, which read
    // row-major again is L⁻¹. The other triangle (zeros) is left as it is.
    const bool columnMajor = lower.stride(0) == 1 && lower.stride(1) == n;
    torch::Tensor a = columnMajor ? lower.clone(at::MemoryFormat::Preserve) : lower.contiguous().clone();
    const cublasFillMode_t uplo = columnMajor ? CUBLAS_FILL_MODE_LOWER : CUBLAS_FILL_MODE_UPPER;
    const c10::cuda::CUDAGuard guard(a.device());
    const int device = a.device().index();
    auto info = torch::zeros({1}, a.options().dtype(torch::kInt));
    {
        const std::lock_guard lock(api.mutex);
        cusolverDnHandle_t& handle = api.handles[device];
        if (!handle && api.create(&handle) != CUSOLVER_STATUS_SUCCESS) {
            handle = nullptr;
            return {};
        }
        if (api.setStream(handle, c10::cuda::getCurrentCUDAStream(device).stream()) != CUSOLVER_STATUS_SUCCESS)
            return {};
        size_t deviceBytes = 0, hostBytes = 0;
        if (api.trtriBufferSize(handle, uplo, CUBLAS_DIAG_NON_UNIT, n, CUDA_R_32F, a.data_ptr(), n, &deviceBytes,
                                &hostBytes)
            != CUSOLVER_STATUS_SUCCESS)
            return {};
        auto deviceWork = torch::empty({int64_t(std::max<size_t>(deviceBytes, 1))}, a.options().dtype(torch::kByte));
        std::vector<std::byte> hostWork(std::max<size_t>(hostBytes, 1));
        if (api.trtri(handle, uplo, CUBLAS_DIAG_NON_UNIT, n, CUDA_R_32F, a.data_ptr(), n, deviceWork.data_ptr(),
                      deviceBytes, hostWork.data(), hostBytes, info.data_ptr<int>())
            != CUSOLVER_STATUS_SUCCESS)
            return {};
    }
    if (info.item<int>() != 0)
        return {};
    return a;
}

#else

bool cudaKernelsBuilt()
{
    return false;
}

double runCudaKernels(torch::Tensor&, const torch::Tensor&, torch::Tensor&, const SolverOptions&, const QuantGrid&,
                      ProgressReporter&, const CancelToken*, const std::string&)
{
    throw std::logic_error("runCudaKernels: this build has no CUDA solver path (SPARSELAB_CUDA_SOLVER)");
}

bool cudaTriangularInverseAvailable()
{
    return false;
}

torch::Tensor invertLowerTriangularCuda(const torch::Tensor&)
{
    return {};
}

#endif

} // namespace sparselab::solve::detail
