namespace ManagedDisks.Keys.Audit;

/// <summary>One key event: who did what to which key (and disk), and how it ended.</summary>
public sealed record AuditRecord(
    string Identity,
    string Operation,
    string Result,
    string? KeyStore = null,
    string? Key = null,
    string? KeyVersion = null,
    string? Disk = null,
    string? Detail = null);
