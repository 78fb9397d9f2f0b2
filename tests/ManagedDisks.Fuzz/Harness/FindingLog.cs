using Microsoft.Extensions.Logging;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>
/// Collects what went wrong during one input where an exception would be swallowed: the
/// connection code catches what a device throws and logs it as an error, so the fake devices
/// record contract violations here and the logger records every error-level entry.
/// </summary>
internal sealed class FindingLog : ILogger
{
    private readonly List<string> _findings = [];

    public void Add(string finding)
    {
        lock (_findings) _findings.Add(finding);
    }

    public void ThrowIfAny()
    {
        lock (_findings)
            if (_findings.Count > 0) throw new FuzzFinding(string.Join("\n", _findings));
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (logLevel >= LogLevel.Error) Add($"logged {logLevel} {eventId.Id}: {formatter(state, exception)} {exception}");
    }
}
