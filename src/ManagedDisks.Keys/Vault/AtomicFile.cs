namespace ManagedDisks.Keys.Vault;

/// <summary>
/// Write to a temporary file, fsync it, rename it over the target, fsync the folder: after a crash
/// the target is the old file or the new one, never half of one, and a completed change stays.
/// Files are created 0600.
/// </summary>
internal static class AtomicFile
{
    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    public static void Write(string path, ReadOnlySpan<byte> content)
    {
        string folder = Path.GetDirectoryName(path)!;
        // A unique name: a temporary file a crashed writer left behind never collides (or leaks its mode).
        string temporary = Path.Combine(folder, $".{Path.GetFileName(path)}.{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6))}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, new FileStreamOptions
                   {
                       Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None,
                       UnixCreateMode = OwnerOnly,
                   }))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
        VaultNative.SyncDirectory(folder);
    }
}
