#pragma once
// A loaded language model described as plain values, for widgets that must not see LibTorch.
//
// Produced on a worker thread by the application (app/gui/jobs/engine_jobs.cpp) from the engine's
// CausalLM and Tokenizer, then copied to the GUI thread. Everything here is a value type:
// safe to copy across threads, no ownership of engine objects.

#include <QList>
#include <QMetaType>
#include <QString>

#include <cstdint>

namespace sparselab::widgets {

// One prunable linear layer: weight [rows, cols] = [out, in].
struct LinearLayerInfo {
    QString name;            // checkpoint tensor name, e.g. "model.layers.0.mlp.down_proj.weight"
    QString kind;            // sub-layer within the block, e.g. "mlp.down_proj"
    qint64 rows = 0;         // output features
    qint64 cols = 0;         // input features
    qint64 parameters = 0;   // rows * cols (+ bias length when hasBias)
    bool hasBias = false;
    QString dtype;           // dtype on disk, e.g. "F32", "BF16"
};

// One decoder block and its linear layers in execution order.
struct BlockInfo {
    int index = 0;
    QList<LinearLayerInfo> linears;
    [[nodiscard]] qint64 parameters() const
    {
        qint64 sum = 0;
        for (const auto& l : linears)
            sum += l.parameters;
        return sum;
    }
};

// A parameter tensor that is not a prunable linear layer (embeddings, norms, head).
struct TensorInfo {
    QString name;            // checkpoint tensor name
    QList<qint64> shape;     // e.g. {512, 64}
    qint64 parameters = 0;
};

struct ModelSummary {
    QString folder;          // absolute path of the model folder
    QString name;            // folder name, e.g. "stories260K-hf"
    QString architecture;    // e.g. "LlamaForCausalLM"
    QString modelType;       // config's model_type, e.g. "llama"
    qint64 hiddenSize = 0;
    qint64 intermediateSize = 0;
    qint64 numHeads = 0;
    qint64 numKvHeads = 0;
    qint64 headDim = 0;
    qint64 vocabSize = 0;
    qint64 maxPositions = 0;
    QString activation;      // e.g. "silu"
    bool tiedEmbeddings = false;
    QString storedDtype;     // most common dtype on disk, e.g. "F32"
    QString tokenizer;       // human description, e.g. "SentencePiece BPE (tokenizer.model, 512 pieces)"
    qint64 tokenizerVocab = 0;
    bool tokenizerAddsBos = false;
    qint64 totalParameters = 0;   // every stored parameter (tied weights once)
    qint64 linearParameters = 0;  // parameters in prunable linear layers (weights and biases)
    QList<BlockInfo> blocks;
    QList<TensorInfo> otherTensors; // parameters outside the prunable linear layers

    [[nodiscard]] bool isEmpty() const { return folder.isEmpty(); }
    [[nodiscard]] int linearLayerCount() const
    {
        int n = 0;
        for (const auto& b : blocks)
            n += int(b.linears.size());
        return n;
    }
};

} // namespace sparselab::widgets

Q_DECLARE_METATYPE(sparselab::widgets::ModelSummary)
