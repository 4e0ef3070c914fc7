#include "recovery/recovery.h"

#include "eval/perplexity.h"
#include "model/causal_lm.h"
#include "pipeline/block_walker.h"
#include "util/errors.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iterator>
#include <numeric>
#include <optional>
#include <random>

namespace sparselab::recovery {

namespace {

using Clock = std::chrono::steady_clock;

// One trained tensor with its Adam state. `mask` (1 = may move) is undefined for tensors that
// were never pruned (norms, biases).
struct TrainedTensor {
    torch::Tensor param;
    torch::Tensor mask;
    torch::Tensor firstMoment, secondMoment;
};

// Turns autograd on for the trained tensors and off again however training ends: the model's
// contract is that its parameters never require grad outside recovery.
class TrainingScope {
public:
    explicit TrainingScope(std::vector<TrainedTensor>& tensors) : m_tensors(tensors)
    {
        for (auto& t : m_tensors)
            t.param.requires_grad_(true);
    }
    ~TrainingScope()
    {
        for (auto& t : m_tensors) {
            t.param.mutable_grad().reset();
            t.param.requires_grad_(false);
        }
    }
    TrainingScope(const TrainingScope&) = delete;
    TrainingScope& operator=(const TrainingScope&) = delete;

private:
    std::vector<TrainedTensor>& m_tensors;
};

// Adam exactly as torch.optim.Adam (defaults, no weight decay, no amsgrad) computes it, with
// the gradient of a pruned weight set to zero first and the weight itself re-zeroed after, so
// its moments stay zero and the weight exactly 0.
class Adam {
public:
    static constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;

    explicit Adam(std::vector<TrainedTensor>& tensors) : m_tensors(tensors)
    {
        for (auto& t : m_tensors) {
            t.firstMoment = torch::zeros_like(t.param);
            t.secondMoment = torch::zeros_like(t.param);
        }
    }

    void step(double learningRate)
    {
        torch::NoGradGuard noGrad;
        ++m_step;
        const double biasCorrection1 = 1.0 - std::pow(kBeta1, double(m_step));
        const double biasCorrection2Sqrt = std::sqrt(1.0 - std::pow(kBeta2, double(m_step)));
        for (auto& t : m_tensors) {
            torch::Tensor grad = t.param.grad();
            if (!grad.defined())
                continue;
            if (t.mask.defined())
                grad.mul_(t.mask);
            t.firstMoment.mul_(kBeta1).add_(grad, 1.0 - kBeta1);
            t.secondMoment.mul_(kBeta2).addcmul_(grad, grad, 1.0 - kBeta2);
            const torch::Tensor denom = (t.secondMoment.sqrt() / biasCorrection2Sqrt).add_(kEps);
            t.param.addcdiv_(t.firstMoment, denom, -learningRate / biasCorrection1);
            if (t.mask.defined())
                t.param.mul_(t.mask);
            grad.zero_();
        }
    }

    static void clearGradients(std::vector<TrainedTensor>& tensors)
    {
        for (auto& t : tensors)
            if (t.param.grad().defined())
                t.param.mutable_grad().zero_();
    }

private:
    std::vector<TrainedTensor>& m_tensors;
    int64_t m_step = 0;
};

double learningRateAt(const RecoveryParams& p, int64_t step) // step 0-based
{
    if (step < p.warmupSteps)
        return p.learningRate * double(step + 1) / double(p.warmupSteps);
    if (p.schedule == LearningRateSchedule::Constant)
        return p.learningRate;
    const double span = double(std::max<int64_t>(1, p.steps - p.warmupSteps));
    const double progress = double(step - p.warmupSteps) / span;
    return p.learningRate * 0.5 * (1.0 + std::cos(M_PI * progress));
}

// Window order: a fresh seeded permutation each pass over the windows; the batches are its
// consecutive runs of `batch` windows (a last, shorter run is skipped).
class WindowSampler {
public:
    WindowSampler(int64_t windows, int64_t batch, uint64_t seed)
        : m_order(size_t(windows)), m_batch(std::min(batch, windows)), m_random(seed)
    {
        std::iota(m_order.begin(), m_order.end(), int64_t(0));
        m_next = m_order.size(); // shuffle on first use
    }
    torch::Tensor next(torch::Device device)
    {
        if (m_next + size_t(m_batch) > m_order.size()) {
            std::iota(m_order.begin(), m_order.end(), int64_t(0));
            // Fisher–Yates with an explicit draw: std::shuffle's use of the engine is
            // implementation-defined, this is the same on every standard library.
            for (size_t i = m_order.size(); i > 1; --i)
                std::swap(m_order[i - 1], m_order[size_t(m_random() % i)]);
            m_next = 0;
        }
        torch::Tensor idx = torch::from_blob(m_order.data() + m_next, {m_batch}, torch::kLong).clone();
        m_next += size_t(m_batch);
        return idx.to(device);
    }

private:
    std::vector<int64_t> m_order;
    int64_t m_batch;
    std::mt19937_64 m_random;
    size_t m_next = 0;
};

// The windows' ids as one [windows, seqlen] int64 tensor on `device` (a copy).
torch::Tensor windowIds(const data::CalibrationWindows& w, torch::Device device)
{
    return torch::from_blob(const_cast<int64_t*>(w.ids.data()), {w.nsamples, w.seqlen}, torch::kLong).clone().to(device);
}

// Why training must stop before the next step, or "" to go on: a cancel wins over a stop.
std::string stopRequested(const RecoveryObserver& observer)
{
    if (observer.cancel && observer.cancel->cancelled())
        return "cancel";
    if (observer.stop && observer.stop->cancelled())
        return "stop";
    return {};
}

int64_t countNonzero(const std::vector<model::LinearLayer>& layers)
{
    int64_t n = 0;
    for (const auto& l : layers)
        if (!l.weight.is_meta())
            n += l.weight.count_nonzero().item<int64_t>();
    return n;
}

// The tensors of block `block` that train (linears not frozen, with their masks; norms and
// biases with trainNorms).
void addBlockTensors(model::CausalLM& m, int64_t block, const RecoveryParams& p, std::vector<TrainedTensor>& out,
                     RecoveryResult& result)
{
    torch::NoGradGuard noGrad;
    for (auto& layer : m.linears(block)) {
        if (!p.frozenLayers.count(layer.name)) {
            TrainedTensor t;
            t.param = layer.weight;
            t.mask = (layer.weight != 0).to(layer.weight.scalar_type());
            result.trainedWeights += t.mask.sum().item<int64_t>();
            out.push_back(std::move(t));
        }
        if (p.trainNorms && layer.bias.defined()) {
            out.push_back({layer.bias, {}, {}, {}});
            result.trainedWeights += layer.bias.numel();
        }
    }
    if (p.trainNorms)
        for (const auto& t : m.normParameters(block)) {
            out.push_back({t, {}, {}, {}});
            result.trainedWeights += t.numel();
        }
}

// Held-out perplexity as eval/perplexity.h defines it, on the held-out windows laid end to end.
double heldOutPerplexity(const model::CausalLM& m, const data::CalibrationWindows& heldOut, const CancelToken* cancel)
{
    const std::vector<int32_t> ids(heldOut.ids.begin(), heldOut.ids.end());
    eval::PerplexityParams params;
    params.seqlen = heldOut.seqlen;
    params.keepTokenNll = false;
    return eval::evaluatePerplexity(m, ids, params, {}, cancel).perplexity;
}

bool cancelled(const CancelToken* token) { return token && token->cancelled(); }

RecoveryResult recoverLogits(model::CausalLM& student, const TeacherSignal& teacher,
                             const data::CalibrationWindows& train, const data::CalibrationWindows& heldOut,
                             const RecoveryParams& p, const RecoveryObserver& observer)
{
    RecoveryResult result;
    std::vector<TrainedTensor> tensors;
    for (int64_t b = 0; b < student.numBlocks(); ++b) {
        result.nonzeroBefore += countNonzero(student.linears(b));
        addBlockTensors(student, b, p, tensors, result);
    }
    if (p.trainNorms)
        for (const auto& t : student.normParameters(-1)) {
            tensors.push_back({t, {}, {}, {}});
            result.trainedWeights += t.numel();
        }
    result.trainedTensors = int64_t(tensors.size());
    if (result.trainedWeights == 0)
        throw optionError("--recover", "every pruned layer is quantized and stays on its grid, so there is nothing to "
                                       "train; add --recover-norms or compress without --bits");

    const torch::Device device = student.device();
    const torch::Tensor ids = windowIds(train, device);
    WindowSampler sampler(train.nsamples, p.batchWindows, p.seed);
    ProgressReporter reporter(observer.progress, "recovery", p.steps);
    const int64_t evalEvery = p.evalEvery > 0 ? p.evalEvery : std::max<int64_t>(1, p.steps / 10);

    TrainingScope scope(tensors);
    Adam adam(tensors);
    std::vector<torch::Tensor> best;
    double bestPerplexity = 0.0;
    int64_t sinceBest = 0;
    const auto evaluate = [&](int64_t step) {
        if (heldOut.nsamples == 0)
            return false;
        const HeldOutPoint point{step, heldOutPerplexity(student, heldOut, observer.cancel)};
        result.heldOut.push_back(point);
        if (observer.onHeldOut)
            observer.onHeldOut(point);
        if (best.empty() || point.perplexity < bestPerplexity) {
            torch::NoGradGuard noGrad;
            best.clear();
            for (const auto& t : tensors)
                best.push_back(t.param.detach().clone());
            bestPerplexity = point.perplexity;
            result.bestStep = step;
            sinceBest = 0;
            return false;
        }
        return p.patience > 0 && ++sinceBest >= p.patience;
    };

    result.stoppedBy = "steps";
    try {
        evaluate(0);
        for (int64_t step = 0; step < p.steps; ++step) {
            if (std::string why = stopRequested(observer); !why.empty()) {
                result.stoppedBy = std::move(why);
                break;
            }
            const torch::Tensor idx = sampler.next(device);
            const torch::Tensor batchIds = ids.index_select(0, idx);
            torch::Tensor teacherLog;
            if (teacher.logProbs.defined()) {
                teacherLog = teacher.logProbs.index_select(0, idx);
            } else {
                torch::NoGradGuard noGrad;
                teacherLog = at::log_softmax(teacher.model->logits(batchIds), -1);
            }
            torch::Tensor loss;
            {
                at::AutoGradMode grad(true);
                loss = distillationLoss(student, teacherLog, batchIds);
                loss.backward();
            }
            if (cancelled(observer.cancel)) {
                Adam::clearGradients(tensors);
                result.stoppedBy = "cancel";
                break;
            }
            adam.step(learningRateAt(p, step));
            result.stepsRun = step + 1;
            result.loss.push_back(loss.item<double>());
            if (observer.onStep)
                observer.onStep(step + 1, result.loss.back());
            reporter.report(step + 1);
            if ((step + 1) % evalEvery == 0 || step + 1 == p.steps) {
                if (evaluate(step + 1)) {
                    result.stoppedBy = "early-stop";
                    break;
                }
            }
        }
    } catch (const CancelledError&) {
        result.stoppedBy = "cancel"; // inside a held-out evaluation: the weights are a finished step's
    }
    // The best held-out weights, unless the run was cancelled (then the last finished step's).
    if (result.stoppedBy != "cancel" && !best.empty() && result.bestStep != result.stepsRun) {
        torch::NoGradGuard noGrad;
        for (size_t i = 0; i < tensors.size(); ++i)
            tensors[i].param.copy_(best[i]);
    } else {
        result.bestStep = -1; // the last finished step's weights are the model's
    }
    for (int64_t b = 0; b < student.numBlocks(); ++b)
        result.nonzeroAfter += countNonzero(student.linears(b));
    return result;
}

RecoveryResult recoverBlocks(model::CausalLM& student, const model::CausalLM& teacherIn,
                             const data::CalibrationWindows& train, const data::CalibrationWindows& heldOut,
                             const RecoveryParams& p, const RecoveryObserver& observer)
{
    // The teacher's blocks are materialized and finished like the student's (a streamed dense
    // model holds one block at a time); its weights are never changed.
    auto& teacher = const_cast<model::CausalLM&>(teacherIn);
    RecoveryResult result;
    const torch::Device device = student.device();
    const int64_t blocks = student.numBlocks();
    ProgressReporter reporter(observer.progress, "recovery", p.steps * blocks);
    const bool evaluateWhole = heldOut.nsamples > 0 && !student.streamed();
    if (evaluateWhole) {
        const HeldOutPoint point{0, heldOutPerplexity(student, heldOut, observer.cancel)};
        result.heldOut.push_back(point);
        if (observer.onHeldOut)
            observer.onHeldOut(point);
    }

    // Both models' activations walk the blocks in step (cancel is checked by the steps, so the
    // walkers get none): the teacher's outputs of block b are its target, the student's inputs
    // of block b its training data.
    std::optional<pipeline::BlockWalker> studentWalker, teacherWalker;
    {
        torch::NoGradGuard noGrad;
        studentWalker.emplace(student, train, p.batchWindows, nullptr);
        teacherWalker.emplace(teacher, train, p.batchWindows, nullptr);
    }
    result.stoppedBy = "steps";
    int64_t done = 0;
    for (int64_t b = 0; b < blocks && result.stoppedBy == "steps"; ++b) {
        student.materializeBlock(b);
        teacher.materializeBlock(b);
        if (b + 1 < blocks) {
            student.prefetchBlock(b + 1);
            teacher.prefetchBlock(b + 1);
        }
        {
            torch::NoGradGuard noGrad;
            teacherWalker->advance(b);
        }
        const torch::Tensor& target = teacherWalker->inputs();
        const torch::Tensor& studentIn = studentWalker->inputs();
        result.nonzeroBefore += countNonzero(student.linears(b));
        std::vector<TrainedTensor> tensors;
        addBlockTensors(student, b, p, tensors, result);
        result.trainedTensors += int64_t(tensors.size());
        if (tensors.empty()) { // every layer of the block is quantized (frozen): nothing to train here
            done += p.steps;
            reporter.report(done, "block " + std::to_string(b));
        } else {
            TrainingScope scope(tensors);
            Adam adam(tensors);
            WindowSampler sampler(train.nsamples, p.batchWindows, p.seed + uint64_t(b));
            for (int64_t step = 0; step < p.steps; ++step) {
                if (std::string why = stopRequested(observer); !why.empty()) {
                    result.stoppedBy = std::move(why);
                    break;
                }
                const torch::Tensor idx = sampler.next(device);
                torch::Tensor loss;
                {
                    at::AutoGradMode grad(true);
                    const torch::Tensor out = student.runBlock(b, studentIn.index_select(0, idx));
                    loss = at::mse_loss(out, target.index_select(0, idx));
                    loss.backward();
                }
                if (cancelled(observer.cancel)) {
                    Adam::clearGradients(tensors);
                    result.stoppedBy = "cancel";
                    break;
                }
                adam.step(learningRateAt(p, step));
                ++result.stepsRun;
                result.loss.push_back(loss.item<double>());
                if (observer.onStep)
                    observer.onStep(result.stepsRun, result.loss.back());
                reporter.report(++done, "block " + std::to_string(b));
            }
        }
        result.nonzeroAfter += countNonzero(student.linears(b));
        if (result.stoppedBy == "steps") {
            torch::NoGradGuard noGrad;
            studentWalker->advance(b);
        }
        student.finishBlock(b);
        teacher.finishBlock(b);
        if (observer.log)
            observer.log("recovery: block " + std::to_string(b) + " done, last loss "
                         + (result.loss.empty() ? std::string("-") : std::to_string(result.loss.back())));
    }
    if (evaluateWhole && result.stoppedBy != "cancel") {
        try {
            const HeldOutPoint point{result.stepsRun, heldOutPerplexity(student, heldOut, observer.cancel)};
            result.heldOut.push_back(point);
            if (observer.onHeldOut)
                observer.onHeldOut(point);
        } catch (const CancelledError&) {
            result.stoppedBy = "cancel"; // the weights are complete; only the measurement stopped
        }
    }
    return result;
}

} // namespace

torch::Tensor distillationLoss(const model::CausalLM& student, const torch::Tensor& teacherLogProbs,
                               const torch::Tensor& ids)
{
    const torch::Tensor studentLog = at::log_softmax(student.logits(ids), -1);
    const double positions = double(ids.size(0) * ids.size(1));
    return (teacherLogProbs.exp() * (teacherLogProbs - studentLog)).sum() / positions;
}

const char* lossName(RecoveryLoss loss) { return loss == RecoveryLoss::LogitKl ? "kl" : "block"; }

RecoveryLoss parseLoss(const std::string& text, const std::string& option)
{
    if (text == "kl")
        return RecoveryLoss::LogitKl;
    if (text == "block")
        return RecoveryLoss::BlockMse;
    throw optionError(option, "must be kl or block, got '" + text + "'");
}

const char* scheduleName(LearningRateSchedule s) { return s == LearningRateSchedule::Constant ? "constant" : "cosine"; }

LearningRateSchedule parseSchedule(const std::string& text, const std::string& option)
{
    if (text == "constant")
        return LearningRateSchedule::Constant;
    if (text == "cosine")
        return LearningRateSchedule::Cosine;
    throw optionError(option, "must be constant or cosine, got '" + text + "'");
}

void RecoveryParams::validate() const
{
    if (steps < 0)
        throw optionError("--recover", "must be 0 or more steps");
    if (!(learningRate > 0.0) || !std::isfinite(learningRate) || learningRate > 1.0)
        throw optionError("--recover-lr", "must be a learning rate in (0, 1]");
    if (batchWindows < 1)
        throw optionError("--recover-batch", "must be at least 1 window");
    if (warmupSteps < 0 || (steps > 0 && warmupSteps >= steps))
        throw optionError("--recover-warmup", "must be below the number of steps");
    if (heldOutWindows < 0 || evalEvery < 0 || patience < 0)
        throw optionError("--recover-heldout", "held-out windows, evaluation interval and patience must be 0 or more");
}

int64_t teacherLogProbsBytes(const model::CausalLM& m, const data::CalibrationWindows& w)
{
    return w.nsamples * w.seqlen * m.config().vocabSize * int64_t(sizeof(float));
}

torch::Tensor teacherLogProbs(const model::CausalLM& dense, const data::CalibrationWindows& windows, int64_t batch,
                              const CancelToken* cancel)
{
    torch::NoGradGuard noGrad;
    const torch::Tensor ids = windowIds(windows, dense.device());
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < windows.nsamples; i += batch) {
        throwIfCancelled(cancel);
        parts.push_back(at::log_softmax(dense.logits(ids.narrow(0, i, std::min(batch, windows.nsamples - i))), -1));
    }
    return torch::cat(parts, 0);
}

data::CalibrationWindows heldOutWindows(const std::vector<int32_t>& ids, const data::CalibrationWindows& train,
                                        int64_t count, const std::filesystem::path& textFile)
{
    data::CalibrationWindows out;
    out.seqlen = train.seqlen;
    if (count <= 0)
        return out;
    const int64_t T = train.seqlen;
    // Training windows cover [offset, offset + T]: the +1 is the token the last position
    // predicts; a held-out window must not contain any of them.
    std::vector<std::pair<int64_t, int64_t>> spans;
    for (const int64_t o : train.offsets)
        spans.emplace_back(o, o + T + 1);
    std::sort(spans.begin(), spans.end());
    std::vector<int64_t> free;
    for (int64_t start = 0; start + T <= int64_t(ids.size()); start += T) {
        const int64_t end = start + T;
        const auto it = std::lower_bound(spans.begin(), spans.end(), std::make_pair(end, int64_t(0)));
        // Only spans starting before `end` can overlap, and as all spans have the same
        // length, the one of them that starts last also ends last.
        const bool overlaps = it != spans.begin() && std::prev(it)->second > start;
        if (!overlaps)
            free.push_back(start);
    }
    if (free.empty())
        throw inputError(textFile, "leaves no window of " + std::to_string(T)
                                       + " tokens outside the calibration windows to hold out; use a longer text, "
                                         "fewer calibration windows or --recover-heldout 0");
    const int64_t n = std::min<int64_t>(count, int64_t(free.size()));
    for (int64_t i = 0; i < n; ++i) {
        const int64_t start = free[size_t(i * int64_t(free.size()) / n)];
        out.offsets.push_back(start);
        out.ids.insert(out.ids.end(), ids.begin() + start, ids.begin() + start + T);
    }
    out.nsamples = n;
    return out;
}

RecoveryResult recoverModel(model::CausalLM& student, const TeacherSignal& teacher,
                            const data::CalibrationWindows& train, const data::CalibrationWindows& heldOut,
                            const RecoveryParams& params, const RecoveryObserver& observer)
{
    params.validate();
    const auto started = Clock::now();
    RecoveryResult result;
    if (params.loss == RecoveryLoss::LogitKl) {
        if (student.streamed())
            throw optionError("--recover-loss", "kl needs the whole model in memory; use --recover-loss block with --stream");
        if (!teacher.logProbs.defined() && !teacher.model)
            throw std::invalid_argument("recoverModel: the kl loss needs the dense log-probabilities or model");
        if (teacher.logProbs.defined() && teacher.logProbs.size(0) != train.nsamples)
            throw std::invalid_argument("recoverModel: cached log-probabilities are for other windows");
        result = recoverLogits(student, teacher, train, heldOut, params, observer);
    } else {
        if (!teacher.model)
            throw std::invalid_argument("recoverModel: the block loss needs the dense model");
        result = recoverBlocks(student, *teacher.model, train, heldOut, params, observer);
    }
    result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    return result;
}

} // namespace sparselab::recovery
