// libFuzzer target: tokenizer.json parsing (model, pre-tokenizer, normalizer, decoder,
// added tokens, post-processor), then an encode/decode round of a fixed mixed-script text
// so the parsed tables are exercised too.
#include "fuzz_support.h"

#include "tokenize/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace sparselab;
    const auto path = fuzz::writeInput("tokenizer.json", data, size);
    return fuzz::runExpectingOnlyInputErrors([&] {
        auto tok = tokenize::loadTokenizerJson(path);
        const std::vector<int32_t> ids = tok->encode("Once upon a time, 42 cats\n\tsaid \xc3\xa9t\xc3\xa9 \xe2\x96\x81 \xff!");
        (void)tok->decode(ids);
        (void)tok->description();
        if (tok->vocabSize() > 0)
            (void)tok->tokenText(tok->vocabSize() - 1);
    });
}
