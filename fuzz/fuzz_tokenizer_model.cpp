// libFuzzer target: the SentencePiece tokenizer.model reader (a protobuf ModelProto decoded
// by hand), then an encode/decode round of a fixed text.
#include "fuzz_support.h"

#include "tokenize/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace sparselab;
    const auto path = fuzz::writeInput("tokenizer.model", data, size);
    return fuzz::runExpectingOnlyInputErrors([&] {
        auto tok = tokenize::loadSentencePieceModel(path);
        const std::vector<int32_t> ids = tok->encode("Once upon a time, 42 cats\n said \xc3\xa9t\xc3\xa9 \xff!");
        (void)tok->decode(ids);
        if (tok->vocabSize() > 0)
            (void)tok->tokenText(tok->vocabSize() - 1);
    });
}
