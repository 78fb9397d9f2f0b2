namespace ManagedDisks.Keys.Pkcs11;

/// <summary>Where a <see cref="Pkcs11Store"/> finds its token and what it logs in with.</summary>
public sealed record Pkcs11StoreOptions
{
    /// <summary>The PKCS#11 library (the HSM vendor's module), e.g. /usr/lib/softhsm/libsofthsm2.so.</summary>
    public required string Module { get; init; }

    /// <summary>The token's label (CKA_LABEL of the token, as <c>pkcs11-tool --list-slots</c> shows it); or give <see cref="Slot"/>.</summary>
    public string? TokenLabel { get; init; }

    /// <summary>The slot id, when the token has no usable label; ignored when <see cref="TokenLabel"/> is set.</summary>
    public ulong? Slot { get; init; }

    /// <summary>A file holding the user PIN (a trailing newline is ignored).</summary>
    public required string PinFile { get; init; }

    /// <summary>The store's access policy (docs/PKCS11.md): which identity may do what with which key.</summary>
    public required string GrantsFile { get; init; }

    /// <summary>How long a grant change waits for another administrator's change to finish.</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>The clock that decides CKA_START_DATE and CKA_END_DATE (tests move it).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    internal string TokenDescription => TokenLabel is not null ? $"token '{TokenLabel}'" : $"slot {Slot}";
}
