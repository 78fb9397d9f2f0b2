namespace ManagedDisks.Daemon.Configuration;

/// <summary>
/// Every problem found in one disks.toml, each with the line (and for syntax errors the column)
/// it is on, so all of them are reported at once in the file:line: form editors jump to.
/// </summary>
internal sealed class ConfigProblems(string source)
{
    private readonly List<(int Line, int Column, string Message)> _problems = [];

    public int Count => _problems.Count;

    /// <summary>A problem on a 1-based line; 0 when it has no line (a default that is wrong).</summary>
    public void Add(int line, string message) => _problems.Add((line, 0, message));

    public void Add(int line, int column, string message) => _problems.Add((line, column, message));

    public void ThrowIfAny()
    {
        if (_problems.Count > 0) throw ToException();
    }

    public ConfigException ToException()
    {
        var lines = _problems.OrderBy(p => p.Line).ThenBy(p => p.Column).Select(p =>
            $"{source}{(p.Line > 0 ? $":{p.Line}" : "")}{(p.Column > 0 ? $":{p.Column}" : "")}: {p.Message}");
        return new ConfigException($"{source} has {_problems.Count} problem{(_problems.Count == 1 ? "" : "s")}:\n  " + string.Join("\n  ", lines));
    }
}
