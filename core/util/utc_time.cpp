#include "util/utc_time.h"

#include <ctime>

namespace sparselab {

std::string utcNow()
{
    const std::time_t now = std::time(nullptr);
    std::tm parts{};
    gmtime_r(&now, &parts); // reentrant: runs on engine threads beside the GUI
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &parts);
    return buffer;
}

} // namespace sparselab
