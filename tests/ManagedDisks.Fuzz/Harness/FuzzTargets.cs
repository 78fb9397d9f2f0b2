namespace ManagedDisks.Fuzz.Harness;

/// <summary>
/// One fuzz target: its name on the command line, the corpus folder its seeds come from, and
/// what one input does. <see cref="Run"/> throws <see cref="FuzzFinding"/> (or whatever escapes
/// the code under test) when something is wrong; returning means the input was handled correctly.
/// </summary>
public sealed record FuzzTarget(string Name, string CorpusFolder, Action<byte[]> Run);

public static class FuzzTargets
{
    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        new("request", "request", RequestParserTarget.Run),
        new("option", "handshake", OptionParserTarget.Run),
        new("handshake", "handshake", HandshakeTarget.Run),
        new("connection", "connection", ConnectionTarget.Run),
    ];

    public static FuzzTarget? Find(string name) => All.FirstOrDefault(t => t.Name == name);
}

/// <summary>The code under test broke one of its promises on some input.</summary>
public sealed class FuzzFinding(string message) : Exception(message);
