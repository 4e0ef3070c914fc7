// util/sha256.h: SHA-256 against the FIPS 180-2 example digests (one block, two blocks, a
// million bytes), by both implementations; and the SHA-extensions path against the portable
// rounds on pseudo-random messages of every length around the block boundaries, fed whole and
// in uneven pieces (the buffered and the straight-from-input paths).

#include "util/sha256.h"

#include <QTest>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

using namespace sparselab;

namespace {

std::string hexOf(Sha256::Implementation implementation, const std::string& message, size_t piece)
{
    Sha256 hash(implementation);
    for (size_t at = 0; at < message.size(); at += piece)
        hash.update(message.data() + at, std::min(piece, message.size() - at));
    return hash.finishHex();
}

} // namespace

class TestSha256 : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void fipsExamples()
    {
        const std::vector<std::pair<std::string, std::string>> examples = {
            {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
            {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
            {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
            {std::string(1000000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
        };
        for (const auto implementation : {Sha256::Implementation::Fastest, Sha256::Implementation::Portable})
            for (const auto& [message, digest] : examples) {
                QCOMPARE(hexOf(implementation, message, message.size() + 1), digest);
                QCOMPARE(hexOf(implementation, message, 7), digest);
            }
        QCOMPARE(sha256Hex("abc"), std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    }

    void cpuInstructionsAgreeWithPortableRounds()
    {
        if (!Sha256::cpuInstructionsAvailable())
            QSKIP("this CPU has no SHA extensions: Fastest is the portable rounds");
        std::mt19937 random(20261206);
        std::string message(4 * 64 + 3, '\0');
        for (char& c : message)
            c = char(random() & 0xff);
        for (size_t length = 0; length <= message.size(); ++length) {
            const std::string part = message.substr(0, length);
            const std::string expected = hexOf(Sha256::Implementation::Portable, part, 1);
            for (size_t piece : {size_t(1), size_t(63), size_t(64), size_t(65), size_t(1000)})
                QCOMPARE(hexOf(Sha256::Implementation::Fastest, part, piece), expected);
        }
    }
};

QTEST_APPLESS_MAIN(TestSha256)
#include "test_sha256.moc"
