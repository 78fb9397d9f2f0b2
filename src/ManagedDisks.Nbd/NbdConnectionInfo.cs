namespace ManagedDisks.Nbd;

/// <summary>One client connection: <see cref="Export"/> is null while it is still negotiating.</summary>
public sealed record NbdConnectionInfo(long Id, string Peer, string? Export, DateTimeOffset Since);
