<#
.SYNOPSIS
  Removes the plantlink Windows services and program folder (see installers/README.md).

.DESCRIPTION
  .\uninstall.ps1           keeps %ProgramData%\plantlink (configs, outbox / inbox, logs)
  .\uninstall.ps1 -Purge    removes it too: undelivered events are lost
#>
#Requires -RunAsAdministrator
[CmdletBinding()]
param([switch] $Purge)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3

$ProgramDir = Join-Path $env:ProgramFiles 'plantlink'
$DataRoot = Join-Path $env:ProgramData 'plantlink'

function Say([string] $Message) { Write-Host "plantlink uninstall: $Message" }

foreach ($R in @('agent', 'relay')) {
  $svc = Get-Service -Name "plantlink-$R" -ErrorAction SilentlyContinue
  if (-not $svc) { continue }
  if ($svc.Status -ne 'Stopped') {
    # WinSW sends Ctrl+C: the service closes its database before the files go.
    Stop-Service -Name "plantlink-$R"
    $svc.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(60))
  }
  $wrapper = Join-Path $ProgramDir "plantlink-$R.exe"
  $eap = $ErrorActionPreference
  $ErrorActionPreference = 'Continue'
  if (Test-Path -LiteralPath $wrapper) { & $wrapper uninstall 2>&1 | Out-Null }
  if (Get-Service -Name "plantlink-$R" -ErrorAction SilentlyContinue) { & sc.exe delete "plantlink-$R" 2>&1 | Out-Null }
  $ErrorActionPreference = $eap
  if (Get-Service -Name "plantlink-$R" -ErrorAction SilentlyContinue) { throw "could not remove service plantlink-$R" }
  Say "removed service plantlink-$R"
}

if (Test-Path -LiteralPath $ProgramDir) {
  Remove-Item -LiteralPath $ProgramDir -Recurse -Force
  Say "removed $ProgramDir"
}

if ($Purge) {
  if (Test-Path -LiteralPath $DataRoot) { Remove-Item -LiteralPath $DataRoot -Recurse -Force }
  Say "purged $DataRoot"
} elseif (Test-Path -LiteralPath $DataRoot) {
  Say "kept $DataRoot (configs, data, logs; reinstalling picks them up; -Purge removes it)"
}
