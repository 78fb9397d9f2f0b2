namespace ManagedDisks.BlockDevices;

/// <summary>Turns operating-system failures of the backing file into device errors.</summary>
internal static class SparseFileErrors
{
    public static BlockDeviceException FromErrno(int errno, string what) => new(
        errno is LinuxFile.ENOSPC or LinuxFile.EDQUOT or LinuxFile.EFBIG ? DeviceError.NoSpace : DeviceError.InputOutput,
        $"{what} failed: errno {errno}");

    // On Unix, .NET puts the raw errno into IOException.HResult.
    public static BlockDeviceException FromIOException(IOException e, string what) => FromErrno(e.HResult, $"{what} ({e.Message})");
}
