namespace ManagedDisks.Keys.Vault;

/// <summary>How a <see cref="SoftwareVault"/> behaves; the first two apply only when the vault is created.</summary>
public sealed record SoftwareVaultOptions
{
    /// <summary>
    /// Written into a new vault's metadata. While on, a deleted key cannot be purged before its
    /// retention period ends. There is no command to switch it off (as in Key Vault).
    /// </summary>
    public bool PurgeProtection { get; init; } = true;

    /// <summary>How long a deleted key stays recoverable; whole days, written into a new vault's metadata.</summary>
    public TimeSpan RetentionPeriod { get; init; } = TimeSpan.FromDays(90);

    /// <summary>How long a change waits for another administrator's change to finish.</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>The clock that decides expiry, not-before and retention (tests move it).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}
