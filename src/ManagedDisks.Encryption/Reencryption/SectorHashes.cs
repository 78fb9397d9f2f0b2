using System.Security.Cryptography;
using ManagedDisks.Encryption.Format;

namespace ManagedDisks.Encryption.Reencryption;

/// <summary>
/// The record of an in-progress chunk: SHA-256 of each stored sector, truncated to 128 bits.
/// A hole is recorded as 16 zero bytes (a real sector hashes to that with probability 2^-128),
/// so anything written into a hole afterwards never matches.
/// </summary>
internal static class SectorHashes
{
    /// <summary>The hashes of every sector in <paramref name="stored"/>, concatenated.</summary>
    public static byte[] Record(ReadOnlySpan<byte> stored, int sectorSize)
    {
        int sectors = stored.Length / sectorSize;
        var hashes = new byte[sectors * ReencryptionState.HashLength];
        for (int i = 0; i < sectors; i++)
        {
            var sector = stored.Slice(i * sectorSize, sectorSize);
            if (IsHole(sector)) continue;
            Compute(sector, hashes.AsSpan(i * ReencryptionState.HashLength, ReencryptionState.HashLength));
        }
        return hashes;
    }

    /// <summary>Whether <paramref name="stored"/> still holds exactly what was recorded (the old ciphertext).</summary>
    public static bool Matches(ReadOnlySpan<byte> stored, ReadOnlySpan<byte> recorded)
    {
        Span<byte> actual = stackalloc byte[ReencryptionState.HashLength];
        Compute(stored, actual);
        return actual.SequenceEqual(recorded);
    }

    public static bool IsHole(ReadOnlySpan<byte> sector) => sector.IndexOfAnyExcept((byte)0) < 0;

    private static void Compute(ReadOnlySpan<byte> sector, Span<byte> destination)
    {
        Span<byte> full = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(sector, full);
        full[..ReencryptionState.HashLength].CopyTo(destination);
    }
}
