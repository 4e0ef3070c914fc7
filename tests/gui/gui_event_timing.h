#pragma once
// How long the GUI thread spends handling one event, in that thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID): what the workbench's code controls. The wall-clock gap between
// timer ticks that the responsiveness tests measured before also counts the time the
// scheduler gives other processes, so on a loaded 2-core CI machine it failed without the
// code being any slower; CPU time per event does not.
//
// Use SPARSELAB_GUI_TEST_MAIN(TestClass) instead of QTEST_MAIN, then
//     EventTimingApplication::instance()->startMeasuring();
//     ... the work ...
//     const auto longest = EventTimingApplication::instance()->stopMeasuring();
//     QVERIFY2(longest.milliseconds() < 50, qPrintable(longest.describe()));
// Only outermost deliveries on the GUI thread count (an event handled inside another's
// handler is part of that one).

#include <QApplication>
#include <QEvent>
#include <QMetaEnum>
#include <QString>
#include <QTest>
#include <QThread>

#include <ctime>

namespace sparselab::testing {

class EventTimingApplication : public QApplication {
public:
    struct Longest {
        qint64 nanoseconds = 0;
        QString receiver;            // class name of the receiver
        int eventType = 0;
        qint64 events = 0;           // outermost events measured
        [[nodiscard]] double milliseconds() const { return double(nanoseconds) / 1e6; }
        [[nodiscard]] QString describe() const
        {
            return QStringLiteral("longest GUI-thread event: %1 ms of CPU (event type %2 to %3) among %4 events")
                .arg(milliseconds(), 0, 'f', 1)
                .arg(eventType)
                .arg(receiver)
                .arg(events);
        }
    };

    EventTimingApplication(int& argc, char** argv) : QApplication(argc, argv) {}

    static EventTimingApplication* instance() { return static_cast<EventTimingApplication*>(QCoreApplication::instance()); }

    void startMeasuring()
    {
        m_longest = {};
        m_measuring = true;
    }
    Longest stopMeasuring()
    {
        m_measuring = false;
        return m_longest;
    }

    bool notify(QObject* receiver, QEvent* event) override
    {
        if (!m_measuring || QThread::currentThread() != thread())
            return QApplication::notify(receiver, event);
        const bool outermost = m_depth++ == 0;
        const qint64 started = outermost ? threadCpuNanoseconds() : 0;
        // Taken before delivery: a DeferredDelete event deletes its receiver, and the event
        // itself may be gone afterwards. The class name is static storage.
        const int type = event->type();
        const char* receiverClass = receiver ? receiver->metaObject()->className() : "";
        const bool result = QApplication::notify(receiver, event);
        --m_depth;
        if (outermost && m_measuring) {
            ++m_longest.events;
            const qint64 spent = threadCpuNanoseconds() - started;
            if (spent > m_longest.nanoseconds) {
                m_longest.nanoseconds = spent;
                m_longest.eventType = type;
                m_longest.receiver = QString::fromLatin1(receiverClass);
            }
        }
        return result;
    }

private:
    static qint64 threadCpuNanoseconds()
    {
        timespec t{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        return qint64(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
    }

    bool m_measuring = false;
    int m_depth = 0;
    Longest m_longest;
};

} // namespace sparselab::testing

// QTEST_MAIN for widget tests, with the event-timing application.
#define SPARSELAB_GUI_TEST_MAIN(TestObject)                                      \
    int main(int argc, char** argv)                                              \
    {                                                                            \
        sparselab::testing::EventTimingApplication app(argc, argv);              \
        app.setAttribute(Qt::AA_Use96Dpi, true);                                 \
        TestObject tc;                                                           \
        QTEST_SET_MAIN_SOURCE_PATH                                               \
        return QTest::qExec(&tc, argc, argv);                                    \
    }
